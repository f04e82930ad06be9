package bench_test

import (
	"context"
	"os"
	"testing"
	"time"

	"keepwatch/internal/bench"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// Three nodes on one PostgreSQL, heartbeats spread over them as a load
// balancer would: every server that falls silent is declared, whichever
// node heard it last and whichever node watches its part, and no live
// server is. (The parts' holder hears only a third of the heartbeats; a
// sweep that blocked lease renewal once let the leases lapse and the
// next holders' guard hid every silent server.)
func TestThreeNodesDeclareEverySilencedServer(t *testing.T) {
	testutil.DSN(t, store.Postgres) // PostgreSQL present, or skip/fail as configured
	base := os.Getenv("KEEPWATCH_TEST_POSTGRES")
	if base == "" {
		base = testutil.DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, nodes := range []int{1, 3} {
		r, err := bench.Run(ctx, bench.Config{Servers: 300, Duration: 3 * time.Second, Store: store.Postgres, DB: base, Conns: 16, Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		if r.Silenced == 0 || r.Detected != r.Silenced || r.FalseUnavailable != 0 || r.Errors != 0 {
			t.Fatalf("%d node(s): %d of %d silent servers declared, %d live ones declared, %d errors", nodes, r.Detected, r.Silenced, r.FalseUnavailable, r.Errors)
		}
	}
}

func TestSeveralNodesNeedPostgreSQL(t *testing.T) {
	if _, err := bench.Run(context.Background(), bench.Config{Servers: 100, Store: store.SQLite, Nodes: 2}); err == nil {
		t.Fatal("two nodes on SQLite accepted")
	}
}
