//go:build !windows

package agent

import (
	"context"
	"errors"
)

// ServiceName is the agent's service name (Windows service, systemd unit).
const ServiceName = "keepwatch-agent"

// errNotWindows explains where services come from on other systems.
var errNotWindows = errors.New("this registers a Windows service; on Linux install the systemd unit shown in docs/agent.md")

// IsService reports whether the Windows service manager started this
// process; never on this system.
func IsService() bool { return false }

// RunService runs under the Windows service manager; this system has none.
func RunService(func(ctx context.Context) error) error { return errNotWindows }

// InstallService registers the Windows service; see errNotWindows.
func InstallService(exe, stateDir, configFile string) error { return errNotWindows }

// UninstallService removes the Windows service; see errNotWindows.
func UninstallService() error { return errNotWindows }
