package web

import (
	"context"
	"slices"

	"keepwatch"
)

// overviewRow is one installation on the overview, with who is on its
// problems and its next scheduled maintenance.
type overviewRow struct {
	keepwatch.InstallationView
	// AckedBy and Assigned name the people on its open incidents
	// (acknowledged by, assigned to), each once.
	AckedBy, Assigned []string
	// Open counts its unresolved incidents, Unowned those nobody
	// acknowledged or was assigned.
	Open, Unowned int
	Scheduled     *keepwatch.MaintenanceWindow
}

// overviewIncidents bounds the unresolved incidents read to tell who is
// on the overview's problems.
const overviewIncidents = 5000

// whoIsOnIt fills in the people on the rows' incidents and the rows'
// scheduled maintenance.
func (h *Handler) whoIsOnIt(ctx context.Context, integratorID int64, rows []overviewRow) error {
	if len(rows) == 0 {
		return nil
	}
	at := map[string]int{}
	for i := range rows {
		at[rows[i].SLC] = i
	}
	list, err := h.Store.Incidents(ctx, integratorID, "", overviewIncidents)
	if err != nil {
		return err
	}
	var ids []int64
	for _, n := range list {
		if _, ok := at[n.SLC]; ok {
			ids = append(ids, n.ID)
		}
	}
	assignees, err := h.Store.Assignees(ctx, integratorID, ids)
	if err != nil {
		return err
	}
	add := func(list []string, who string) []string {
		if who == "" || slices.Contains(list, who) {
			return list
		}
		return append(list, who)
	}
	for _, n := range list {
		i, ok := at[n.SLC]
		if !ok || n.ParentID != nil { // a server of a site outage: the site's incident speaks for it
			continue
		}
		row := &rows[i]
		row.Open++
		a, assigned := assignees[n.ID]
		if n.AckedBy == "" && !assigned {
			row.Unowned++
		}
		row.AckedBy = add(row.AckedBy, keepwatch.ActorName(n.AckedBy))
		if assigned {
			row.Assigned = add(row.Assigned, a.Email)
		}
	}
	upcoming, err := h.Store.UpcomingMaintenance(ctx, integratorID, h.now())
	if err != nil {
		return err
	}
	for slc, m := range upcoming {
		if i, ok := at[slc]; ok {
			rows[i].Scheduled = &m
		}
	}
	return nil
}
