package keepwatch_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// imports reads the non-test imports of the package in dir.
func imports(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			out[p] = true
		}
	}
	return out
}

// TestPackagesImportWhatTheArchitectureAllows keeps the domain inward
// (docs/architecture.md): the root package imports no keepwatch package;
// the doors (api, web), ingest, monitor, notify and auth take interfaces
// and never import the SQL store; the store knows nothing of the doors.
func TestPackagesImportWhatTheArchitectureAllows(t *testing.T) {
	forbidden := map[string][]string{
		".":                 {"keepwatch/"},
		"internal/api":      {"keepwatch/internal/store", "keepwatch/internal/app"},
		"internal/web":      {"keepwatch/internal/store", "keepwatch/internal/app"},
		"internal/ingest":   {"keepwatch/internal/store", "keepwatch/internal/monitor", "keepwatch/internal/app"},
		"internal/monitor":  {"keepwatch/internal/store", "keepwatch/internal/ingest", "keepwatch/internal/app"},
		"internal/notify":   {"keepwatch/internal/store", "keepwatch/internal/app"},
		"internal/auth":     {"keepwatch/internal/store", "keepwatch/internal/app"},
		"internal/store":    {"keepwatch/internal/api", "keepwatch/internal/web", "keepwatch/internal/ingest", "keepwatch/internal/monitor", "keepwatch/internal/notify", "keepwatch/internal/auth", "keepwatch/internal/app"},
		"internal/protocol": {"keepwatch/"},
		"internal/agent":    {"keepwatch/internal/store", "keepwatch/internal/app", "keepwatch/internal/ingest"},
	}
	for dir, bad := range forbidden {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for p := range imports(t, dir) {
			for _, b := range bad {
				if p == b || strings.HasSuffix(b, "/") && strings.HasPrefix(p, b) {
					t.Errorf("%s imports %s", dir, p)
				}
			}
		}
	}
}
