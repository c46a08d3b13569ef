package server

import (
	"strconv"

	"github.com/stagecoach/stagecoach/stages/remote"
)

var withHostScript = load("with_host.sh")

// HealthCommand runs the command health check shellCmd in release id's
// directory with shared/.env exported and STAGECOACH_RELEASE,
// STAGECOACH_ROOT and STAGECOACH_HOST (host, as configured) set.
func HealthCommand(l Layout, id, host, shellCmd string) (remote.Command, error) {
	return runIn(l, id, "health check", withHostScript.argv(host, shellCmd)...)
}

// SlotHealthCommand is HealthCommand for a check of the slot on port:
// PORT is exported as the slot's port, over the PORT that shared/.env may
// set (env.vars or a host's vars), as for the slot's own commands.
func SlotHealthCommand(l Layout, id, host string, port int, shellCmd string) (remote.Command, error) {
	return HealthCommand(l, id, host, withPortScript.line(strconv.Itoa(port), shellCmd))
}
