package agent

import (
	"strings"
	"testing"
	"time"

	"keepwatch"
)

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(`{
		"drives": [{"path": "/srv/recordings"}, {"path": "/srv/archive", "storage_low_percent": 5, "storage_full_percent": 0.5}],
		"cameras": [{"name": "cam-2", "rtsp": "rtsp://10.0.4.12/stream1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Drives[0]; d.StorageLowPercent != 10 || d.StorageFullPercent != 1 {
		t.Fatalf("drive defaults: %+v", d)
	}
	if d := c.Drives[1]; d.StorageLowPercent != 5 || d.StorageFullPercent != 0.5 {
		t.Fatalf("per-drive thresholds: %+v", d)
	}
	if c.Cameras[0].Address != "10.0.4.12:554" {
		t.Fatalf("address from the RTSP URL: %q", c.Cameras[0].Address)
	}
	cc := c.Checks.Cameras
	if cc.Every.D() != 30*time.Second || cc.Timeout.D() != 3*time.Second || cc.Attempts != 3 || c.Checks.Drives.Every.D() != time.Minute {
		t.Fatalf("check defaults: %+v", c.Checks)
	}
	if c.LocalAPI != DefaultLocalAPI || c.Spool.MaxReports != DefaultMaxReports {
		t.Fatalf("local API %q, spool %d", c.LocalAPI, c.Spool.MaxReports)
	}
}

func TestConfigRefusesMistakes(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"local_api": "0.0.0.0:8444"}`, "loopback"},
		{`{"local_api": "192.168.1.10:8444"}`, "loopback"},
		{`{"local_api": "keepwatch.example:8444"}`, "loopback"},
		{`{"local_api": "8444"}`, "host:port"},
		{`{"drive": [{"path": "/srv"}]}`, `unknown field "drive"`},
		{`{"drives": [{"path": ""}]}`, "path is required"},
		{`{"drives": [{"path": "/a"}, {"path": "/a"}]}`, "twice"},
		{`{"drives": [{"path": "/a", "role": "boot"}]}`, "role"},
		{`{"thresholds": {"storage_low_percent": 1, "storage_full_percent": 5}}`, "must not be above"},
		{`{"thresholds": {"storage_low_percent": 150}}`, "percentages"},
		{`{"cameras": [{"name": "a"}]}`, "address"},
		{`{"cameras": [{"name": "a", "address": "10.0.0.1"}]}`, "host:port"},
		{`{"cameras": [{"name": "a", "rtsp": "http://10.0.0.1/"}]}`, "rtsp"},
		{`{"cameras": [{"name": "a", "address": "h:1"}, {"name": "a", "address": "h:2"}]}`, "used twice"},
		{`{"checks": {"cameras": {"every": "fast"}}}`, "duration"},
		{`{"checks": {"drives": {"every": "1ms"}}}`, "between"},
		{`{"checks": {"cameras": {"attempts": 50}}}`, "attempts"},
		{`{"licensed_cameras": -1}`, "negative"},
		{`{"spool": {"max_reports": 3}}`, "max_reports"},
		{"{\n\"drives\": [\n}", "line 3"},
		{`{} {}`, "after the JSON"},
	} {
		_, err := ParseConfig(strings.NewReader(c.json))
		if err == nil || keepwatch.ErrorCode(err) != keepwatch.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid_request mentioning %q", c.json, err, c.want)
		}
	}
	for _, ok := range []string{`{"local_api": "127.0.0.1:0"}`, `{"local_api": "[::1]:8444"}`, `{"local_api": "localhost:8444"}`} {
		c, err := ParseConfig(strings.NewReader(ok))
		if err != nil {
			t.Errorf("%s: %v", ok, err)
		}
		if strings.HasPrefix(c.LocalAPI, "localhost") {
			t.Errorf("%s listens on a name, not an address: %s", ok, c.LocalAPI)
		}
	}
}
