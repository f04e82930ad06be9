package keepwatch

// ServerStatus is one recording server's display status: its state when
// it is not reporting, else its worst condition, so that a server row
// never says "OK" beside an error it reports.
func ServerStatus(s Server) Status {
	switch s.State {
	case ServerUnavailable:
		return StatusUnavailable
	case ServerConsentWithdrawn:
		return StatusConsentWithdrawn
	case ServerPending:
		return StatusNeverReported
	}
	if c := WorstCondition(s.Conditions); c != nil {
		if c.Severity == SeverityWarning {
			return StatusWarning
		}
		return StatusError
	}
	return StatusOK
}

// WorstCondition is the condition that speaks for a list: the oldest
// error, else the oldest warning; nil for none.
func WorstCondition(cs []Condition) *Condition {
	var worst *Condition
	for i := range cs {
		c := &cs[i]
		switch {
		case worst == nil:
			worst = c
		case (c.Severity != SeverityWarning) != (worst.Severity != SeverityWarning):
			if c.Severity != SeverityWarning {
				worst = c
			}
		case c.Since.Before(worst.Since):
			worst = c
		}
	}
	return worst
}
