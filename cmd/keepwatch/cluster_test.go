package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestThreeNodesShareTheSweepAndLiveUpdates runs three keepwatch processes
// on one PostgreSQL behind a simulated load balancer, kills one with
// SIGKILL, and checks that every silent server is declared unavailable
// exactly once, no reporting server is, and a live stream on one node sees
// what another node ingested.
func TestThreeNodesShareTheSweepAndLiveUpdates(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	admin := func(args ...string) string {
		out, _ := cli(t, "", append([]string{"admin", "--db", dsn}, args...)...)
		return strings.TrimSpace(out)
	}
	admin("integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	token := admin("token", "create", "--integrator", "Alice Security", "--name", "t", "--role", "owner")
	var keys []string
	for i := 0; i < 3; i++ {
		keys = append(keys, admin("license", "add", "--slc", fmt.Sprintf("NODE-000%d", i), "--customer", fmt.Sprintf("Customer %d", i),
			"--product", "p", "--cameras", "1", "--care-plus-until", "2099-01-01"))
	}
	type node struct {
		p  *serverProcess
		ca string
	}
	var nodes []node
	// Every node shares one secret key, as operators must configure it.
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(keyFile, []byte(testutil.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		data := t.TempDir()
		p := startServer(t, data, freePort(t), "--db", dsn, "--heartbeat-interval", "1s", "--secret-key-file", keyFile)
		nodes = append(nodes, node{p, filepath.Join(data, "tls", "cert.pem")})
	}
	api := func(n int) *apiClient { return newAPIClient(t, nodes[n].p.url, nodes[n].ca, token) }
	for i := 0; i < 3; i++ {
		if code, body := api(0).do("POST", "/api/v1/registrations", map[string]string{"slc": fmt.Sprintf("NODE-000%d", i)}); code != 201 {
			t.Fatalf("register: %d %v", code, body)
		}
	}
	// 24 servers, 8 per installation, enrolled through node 0.
	type fleetServer struct {
		mu     sync.Mutex // one report of a server at a time, as its agent does
		st     *agent.State
		silent bool
	}
	var fleet []*fleetServer
	c0, err := agent.NewClient(nodes[0].p.url, nodes[0].ca)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 24; i++ {
		st, err := agent.EnrollWith(context.Background(), c0, agent.EnrollOptions{SLC: fmt.Sprintf("NODE-000%d", i%3), Key: keys[i%3], Name: fmt.Sprintf("RS-%02d", i), Consent: true})
		if err != nil {
			t.Fatal(err)
		}
		fleet = append(fleet, &fleetServer{st: st, silent: i%6 == 5}) // 4 will fall silent
	}
	clients := make([]*agent.Client, 3)
	for i := range nodes {
		if clients[i], err = agent.NewClient(nodes[i].p.url, nodes[i].ca); err != nil {
			t.Fatal(err)
		}
	}
	// The load balancer: server i goes to node i%3 while it is alive,
	// else to the next live node.
	var mu sync.Mutex
	dead := map[int]bool{}
	var refused []string
	beat := func(i int, s *fleetServer, p *protocol.Payload) {
		mu.Lock()
		n := i % 3
		for dead[n] {
			n = (n + 1) % 3
		}
		mu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		snd := &agent.Sender{State: s.st, Client: clients[n]}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := snd.Send(ctx, p); err != nil {
			mu.Lock()
			if !dead[n] {
				refused = append(refused, fmt.Sprintf("server %d via node %d: %v", i, n, err))
			}
			mu.Unlock()
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	silenceAt := make(chan struct{})
	for i, s := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-silenceAt:
					if s.silent {
						return
					}
				default:
				}
				beat(i, s, nil)
				select {
				case <-stop:
					return
				case <-tk.C:
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)

	// A live stream on node 1.
	ctx, cancelStream := context.WithCancel(context.Background())
	defer cancelStream()
	req, _ := http.NewRequestWithContext(ctx, "GET", nodes[1].p.url+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := api(1).http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)

	// Node 0 dies; its servers move to the next node.
	nodes[0].p.cmd.Process.Signal(syscall.SIGKILL)
	nodes[0].p.cmd.Wait()
	mu.Lock()
	dead[0] = true
	mu.Unlock()
	close(silenceAt)
	silencedAt := time.Now()

	// A storage_full report through node 2 reaches the stream on node 1.
	p, _ := agent.StatusPayload([]string{`storage_full:E:\Recordings`}, nil, time.Now())
	beat(2, fleet[2], p)
	deadline := time.After(5 * time.Second)
wait:
	for {
		select {
		case ev := <-events:
			if strings.Contains(ev, "storage_full") {
				break wait
			}
		case <-deadline:
			t.Fatal("the stream on node 1 did not see the report ingested by node 2")
		}
	}

	// Three intervals + 10 % + grace + a safety margin later.
	time.Sleep(time.Until(silencedAt.Add(7 * time.Second)))
	close(stop)
	wg.Wait()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT server_id, COUNT(*) FROM state_changes WHERE kind = 'server_unavailable' AND active = 1 GROUP BY server_id`)
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		rows.Scan(&id, &n)
		marks[id] = n
	}
	rows.Close()
	for i, s := range fleet {
		n := marks[s.st.ServerID]
		if s.silent && n != 1 {
			t.Errorf("silent server %d declared unavailable %d times, want once", i, n)
		}
		if !s.silent && n != 0 {
			t.Errorf("reporting server %d declared unavailable %d times", i, n)
		}
	}
	if len(refused) > 0 {
		t.Errorf("reports refused by live nodes: %v", refused)
	}
}
