package keepwatch

import "strings"

// KindInfo names a condition kind for people.
type KindInfo struct {
	Kind  string
	Label string
	// Event is true for kinds that happen once (an incident a person
	// resolves), false for states that last until they clear.
	Event bool
}

// Kinds lists the kinds keepwatch knows, in the order a person choosing
// among them reads them: states of the recording servers first, then
// events, then what keepwatch itself decides.
var Kinds = []KindInfo{
	{KindStorageFull, "Storage full", false},
	{KindStorageLow, "Storage low", false},
	{KindCameraUnreachable, "Camera unreachable", false},
	{KindMediaDBWriteFailed, "Media database write failed", false},
	{KindLicenseExceeded, "Licence exceeded", false},
	{KindArchiveDeleteFailed, "Archive delete failed", true},
	{KindFileDeleteFailed, "File delete failed", true},
	{KindArchiveFatalError, "Archive fatal error", true},
	{KindArchiveOperationFailed, "Archive operation failed", true},
	{KindArchiveMoveFailed, "Archive move failed", true},
	{KindServerUnavailable, "Server unavailable", false},
	{KindSiteUnreachable, "Site unreachable (Internet?)", false},
	{KindStorageForecast, "Storage filling up", false},
	{KindRetentionShort, "Retention too short", false},
	{KindFlood, "Too many problems at once", false},
	{KindCarePlusEnding, "Care Plus ending", false},
}

var kindLabels = func() map[string]string {
	m := make(map[string]string, len(Kinds))
	for _, k := range Kinds {
		m[k.Kind] = k.Label
	}
	return m
}()

// KindLabel names a condition kind for people; a kind from a newer agent
// is named from its own words ("thermal_alarm" is "Thermal alarm").
func KindLabel(kind string) string {
	if l, ok := kindLabels[kind]; ok {
		return l
	}
	s := strings.ReplaceAll(kind, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
