package server

import "github.com/stagecoach/stagecoach/stages/remote"

var withHostScript = load("with_host.sh")

// HealthCommand runs the command health check shellCmd in release id's
// directory with shared/.env exported and STAGECOACH_RELEASE,
// STAGECOACH_ROOT and STAGECOACH_HOST (host, as configured) set.
func HealthCommand(l Layout, id, host, shellCmd string) (remote.Command, error) {
	return runIn(l, id, "health check", withHostScript.argv(host, shellCmd)...)
}
