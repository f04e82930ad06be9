package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/protocol"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestTwoNodesShareOneDatabaseUnderLoad runs two keepwatch nodes in one
// process on one PostgreSQL, with heartbeats, status reports, the sweeper,
// the lease rounds and the notifier all busy at once (run it with -race).
// The same sealed report sent to both nodes at the same moment is
// accepted by exactly one; a report acknowledged by one node is refused as
// replayed by the other; servers that stop reporting are declared
// unavailable once; the leases split the fleet between the nodes.
func TestTwoNodesShareOneDatabaseUnderLoad(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	var nodes []*app.App
	for i := range 2 {
		a := start(t, app.Config{DataDir: t.TempDir(), DB: dsn, SecretKey: testutil.SecretKey, InsecureHTTP: true,
			Interval: time.Second, SweepEvery: 20 * time.Millisecond, ReloadEvery: 200 * time.Millisecond, Node: fmt.Sprintf("node-%d", i)})
		defer a.Shutdown(ctx)
		nodes = append(nodes, a)
	}
	st := nodes[0].Store
	until, _ := keepwatch.ParseDate("2099-01-01")
	const sites, perSite = 8, 5
	var senders []*agent.Sender
	for i := range sites {
		slc := fmt.Sprintf("TWO-%04d", i)
		if _, err := st.CreateInstallation(ctx, keepwatch.Installation{SLC: slc, Customer: "c", Product: "p", CarePlusUntil: until}, secret.Hash("key")); err != nil {
			t.Fatal(err)
		}
		for j := range perSite {
			a := nodes[(i+j)%2]
			s, err := agent.Enroll(ctx, agent.EnrollOptions{Server: a.URL(), SLC: slc, Key: "key", Name: fmt.Sprintf("RS-%d", j), Consent: true})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := agent.NewClient(s.Server, "")
			senders = append(senders, &agent.Sender{State: s, Client: c})
		}
	}
	clients := []*http.Client{{Timeout: 5 * time.Second}, {Timeout: 5 * time.Second}}

	// The same envelope to both nodes at once: one wins.
	var doubles, races atomic.Int64
	// When each sender's acknowledged reports were sent: a server may be
	// declared unavailable only three intervals after the last of them
	// (on a starved machine its reports may not get through, and then
	// declaring it is right).
	acks := make([][]time.Time, len(senders))
	race := func(s *agent.Sender) bool {
		id, _ := protocol.ParseServerID(s.State.ServerID)
		s.State.Seq++
		env, err := protocol.Seal(s.State.Key, id, s.State.Seq, nil)
		if err != nil {
			t.Error(err)
			return false
		}
		var ok atomic.Int64
		var wg sync.WaitGroup
		for n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := clients[n].Post(nodes[n].URL()+protocol.ReportPath, "application/octet-stream", bytes.NewReader(env))
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		races.Add(1)
		if ok.Load() > 1 {
			doubles.Add(1)
		}
		return ok.Load() > 0
	}

	stop := make(chan struct{})
	silent := map[int]bool{3: true, 17: true, 31: true}
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if silent[i] && k >= 3 {
					return
				}
				sent := time.Now()
				var err error
				switch k % 4 {
				case 0:
					if !race(s) {
						err = errors.New("refused")
					}
				case 1:
					p, _ := agent.StatusPayload([]string{fmt.Sprintf("camera_unreachable:cam-%d", k%3)}, nil, time.Now())
					s.Client.BaseURL = nodes[k%2].URL()
					_, err = s.Send(ctx, p)
				default:
					s.Client.BaseURL = nodes[(i+k)%2].URL()
					_, err = s.Send(ctx, nil)
				}
				if err == nil {
					acks[i] = append(acks[i], sent)
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()
	// While they reported, no server was declared unavailable.
	marks, err := st.UnavailableMarks(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range senders {
		at, ok := marks[s.State.ServerID]
		if !ok || silent[i] {
			continue
		}
		declared := time.UnixMilli(at)
		var last time.Time
		for _, a := range acks[i] {
			if !a.After(declared) {
				last = a
			}
		}
		if !last.IsZero() && declared.Sub(last) < 3*time.Second {
			t.Errorf("server %d declared unavailable %s after a report it sent was acknowledged", i, declared.Sub(last).Round(time.Millisecond))
		} else {
			t.Logf("server %d declared unavailable: none of its reports got through for %s (the machine was starved)", i, declared.Sub(last).Round(time.Millisecond))
		}
	}
	if doubles.Load() > 0 || races.Load() < 20 {
		t.Fatalf("%d of %d envelopes sent to both nodes at once were accepted twice", doubles.Load(), races.Load())
	}

	// A report one node acknowledged is refused by the other.
	s := senders[0]
	s.Client.BaseURL = nodes[0].URL()
	if _, err := s.Send(ctx, nil); err != nil {
		t.Fatal(err)
	}
	id, _ := protocol.ParseServerID(s.State.ServerID)
	env, _ := protocol.Seal(s.State.Key, id, s.State.Seq, nil)
	resp, err := clients[1].Post(nodes[1].URL()+protocol.ReportPath, "application/octet-stream", bytes.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("a heartbeat node 0 acknowledged, replayed to node 1: %d", resp.StatusCode)
	}

	// Every part is watched by one node, and both nodes watch some.
	holders, err := st.LeaseHolders(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, n := range holders {
		per[n]++
	}
	if len(holders) != keepwatch.Partitions || per["node-0"] == 0 || per["node-1"] == 0 {
		t.Fatalf("lease holders: %d parts held, %v", len(holders), per)
	}

	// The silent servers are declared.
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		marks, err := st.UnavailableMarks(ctx, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		declared := 0
		for i, s := range senders {
			_, ok := marks[s.State.ServerID]
			if ok && silent[i] {
				declared++
			}
		}
		if declared == len(silent) {
			break
		}
		if waitCtx.Err() != nil {
			t.Fatalf("%d of %d silent servers declared", declared, len(silent))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
