package fleet

// Deploys reports whether command puts a new release on the hosts (ship,
// swap, deploy): those refuse a first deploy onto a root holding a tree
// Stagecoach did not create. The others (rollback, health, cleanup, adopt)
// have no release of their own to put beside it.
func Deploys(command string) bool {
	switch command {
	case "ship", "swap", "deploy":
		return true
	}
	return false
}
