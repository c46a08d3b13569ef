package slots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

// ErrNoRouter is maintenance asked of an environment without slots: no
// router stands in front of the app to answer for it.
var ErrNoRouter = errors.New("maintenance mode goes through the slots' router, and this environment has none: " +
	"set services.slots and services.router (router.nginx.site serves the maintenance page itself, or a command router with maintenance.on and .off)")

// SetMaintenance turns maintenance mode on h on or off through the
// router, under the deploy lock the caller holds. With nginx the site file
// is rewritten (by rename, nginx -t, the old file put back when it is
// refused, nginx -s reload) to answer every request with 503, Retry-After
// and shared/<page>, whose default Stagecoach writes when the app has
// none; a command router runs its maintenance command. The router's state
// records who turned it on and when, after the router changed: a router
// that refused leaves state and router as they were.
func SetMaintenance(ctx context.Context, rc *run.Context, h *fleet.Host, on bool) error {
	if !Enabled(rc) {
		return ErrNoRouter
	}
	svc, l := rc.Env.Services, h.Layout
	routed, err := server.Run(ctx, h, server.ReadRouter(l, svc.Router))
	if err != nil {
		return fmt.Errorf("read the slots' state: %w", err)
	}
	st := routed.Resolve()
	if m := st.Maintenance; (m != nil) == on {
		if on {
			h.Log.Infof("maintenance is already on (since %s, by %s)", m.Since.Format(time.RFC3339), m.By)
		} else {
			h.Log.Infof("maintenance is already off")
		}
		return nil
	}
	if st.Live == nil {
		return errors.New("no slot is live yet: the first deploy with slots starts the app in slot blue; maintenance goes through the router in front of it")
	}
	live := *st.Live
	next := st
	next.Maintenance = nil
	if on {
		next.Maintenance = &server.MaintenanceInfo{By: fleet.WhoAmI(), Since: rc.Fleet.Now().UTC().Truncate(time.Second)}
	}
	ops, content, err := maintenanceOps(rc, h, live, on)
	if err != nil {
		return err
	}
	next.Router = content
	cmds := make([]remote.Command, 0, len(ops)+1)
	for _, o := range ops {
		cmds = append(cmds, o.Cmd)
	}
	cmds = append(cmds, server.WriteRouterState(l, next))
	results, errs := h.RunBatch(ctx, cmds...)
	for i, o := range ops {
		if !errors.Is(errs[i], remote.ErrSkipped) {
			h.ShowOutput(cmds[i].Desc, results[i])
		}
		if errs[i] != nil {
			_, err := o.Decode(results[i], errs[i])
			return fmt.Errorf("%s: %w", cmds[i].Desc, fleet.WithOutput(err, results[i]))
		}
	}
	if err := errs[len(ops)]; err != nil {
		// The router changed; the record did not: check names the file
		// as not the one Stagecoach wrote until this is run again.
		return fmt.Errorf("the router's maintenance is %s, but recording it failed (run mage maintenance %s again): %w", onOff(on), onOff(on), h.DiskFullOr(err))
	}
	if on {
		h.Log.Infof("maintenance on: the router answers every request with 503 (%s); the live %s runs on", maintenanceWhat(rc), live)
	} else {
		h.Log.Infof("maintenance off: the router sends the traffic to the live %s again", live)
	}
	return nil
}

// maintenanceOps are the router's changes that turn maintenance on h on
// or off, the live slot serving on: with nginx the default page (on only)
// and the site file's switch, with a command router its command; and the
// router file written ("" for a command router).
func maintenanceOps(rc *run.Context, h *fleet.Host, live server.Slot, on bool) ([]server.Op[struct{}], string, error) {
	r, l := rc.Env.Services.Router, h.Layout
	if r.Nginx == nil {
		cmd, err := server.RouterMaintenanceCommand(*r, l, live.Release, live.Port, on)
		if err != nil {
			return nil, "", err
		}
		return []server.Op[struct{}]{{Cmd: cmd}}, "", nil
	}
	content, err := server.NginxFile(*r, l, live.Name, live.Port, on)
	if err != nil {
		return nil, "", err
	}
	var ops []server.Op[struct{}]
	if on {
		ops = append(ops, server.Op[struct{}]{Cmd: server.WriteMaintenancePage(l, r.Maintenance.Page)})
	}
	return append(ops, server.NginxSwitch(*r.Nginx, "turn nginx's maintenance "+onOff(on), content)), content, nil
}

func maintenanceWhat(rc *run.Context) string {
	r := rc.Env.Services.Router
	if r.Nginx == nil {
		return "the command router's own page"
	}
	return fmt.Sprintf("shared/%s, Retry-After %d", r.Maintenance.Page, int(r.Maintenance.RetryAfter/time.Second))
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
