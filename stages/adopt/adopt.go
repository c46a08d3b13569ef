// Package adopt takes over a live server that served the app from plain
// directories before Stagecoach (mage adopt): the environment's adopt:
// block says which of its directories are the app and which are data.
// Each host's live tree becomes release 0 with a manifest hashed on the
// server, its data is backed up and linked from shared/ where it lies (the
// running app keeps its files), current points at release 0, and the
// state records it as live: the next deploy switches from it and a
// rollback can go back to it. Nothing the running app uses moves; what is
// left to the operator is the web server's root, which adopt prints.
package adopt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

// ReleaseID is the id of the release an adoption at now records: its
// time and the revision server.AdoptRevision, as no known commit built it.
func ReleaseID(now time.Time) string {
	return now.UTC().Format("20060102T150405Z") + "-" + server.AdoptRevision
}

// Run adopts every host of the run, which holds their locks, as release
// id (see ReleaseID), then prints per host the change of the web server's
// root the adoption calls for.
func Run(ctx context.Context, rc *run.Context, id string) error {
	a := rc.Env.Adopt
	if a == nil {
		return exitcode.Errorf(exitcode.BadConfig, "environment %s has no adopt: block; describe the live tree there "+
			"(adopt: { app: { frontend: frontend/dist, backend: backend }, data: { data: data }, web_root: frontend })", rc.Env.Name)
	}
	err := rc.Each(ctx, "adopt", func(ctx context.Context, h *fleet.Host) error {
		return host(ctx, rc, h, id)
	})
	if err != nil {
		return err
	}
	for _, h := range rc.Hosts {
		for _, line := range Instructions(a, h.Layout, id) {
			rc.Log.Infof("%s: %s", h.Name, line)
		}
	}
	return nil
}

// host takes h's live tree over as release id in two round trips: the
// take-over (copy, back up, link, hash), then the manifest, naming,
// shared links, verification, switch of current and state at once.
func host(ctx context.Context, rc *run.Context, h *fleet.Host, id string) error {
	a := rc.Env.Adopt
	var app, data []server.AdoptPath
	for _, rel := range config.Sorted(a.App) {
		app = append(app, server.AdoptPath{Path: rel, Live: a.App[rel]})
	}
	for _, s := range config.Sorted(a.Data) {
		data = append(data, server.AdoptPath{Path: s, Live: a.Data[s]})
	}
	take, err := server.TakeOver(h.Layout, id, app, data)
	if err != nil {
		return err
	}
	files, err := server.Run(ctx, h, take)
	if err != nil {
		var refused *server.AdoptRefusedError
		if !errors.As(err, &refused) {
			discard(ctx, h, id)
		}
		return err
	}
	m := Manifest(id, files, time.Now())
	var manifest bytes.Buffer
	if err := m.Encode(&manifest); err != nil {
		return err
	}
	sums, links, err := server.TreeLists(treeEntries(m.Files))
	if err != nil {
		return err
	}
	finish, err := server.FinishAdopt(h.Layout, id)
	if err != nil {
		return err
	}
	link, err := server.LinkShared(h.Layout, id, rc.Env.Shared)
	if err != nil {
		return err
	}
	verify, err := server.VerifyRelease(h.Layout, id, server.VerifySpec{Shared: rc.Env.Shared})
	if err != nil {
		return err
	}
	sw, err := server.Switch(h.Layout, id)
	if err != nil {
		return err
	}
	h.State.AddRelease(server.Release{ID: id, Created: time.Now().UTC(), Status: server.StatusLive})
	if err := h.State.RecordDeploy(server.Deploy{ID: id, User: fleet.WhoAmI(), Host: fleet.MachineName(),
		Started: rc.Started, Duration: time.Since(rc.Started), Result: server.ResultAdopt, BrokeLock: h.BrokeLock()}); err != nil {
		return err
	}
	state, err := h.State.Marshal()
	if err != nil {
		return err
	}
	cmds := append(server.WriteReleaseMeta(h.Layout, id, manifest.Bytes(), sums, links), finish, link, verify.Cmd, sw, server.WriteState(h.Layout, state))
	results, errs := h.RunBatch(ctx, cmds...)
	for i, err := range errs {
		if i == 5 {
			_, err = verify.Decode(results[i], err)
		}
		if err != nil && !errors.Is(err, remote.ErrSkipped) {
			discard(ctx, h, id)
			return fmt.Errorf("release %s: %w", id, err)
		}
	}
	h.Live = id
	h.Log.Infof("adopted the live tree as release %s: %d files, hashed on the server; current -> releases/%s", id, len(files), id)
	if len(rc.Env.Health) > 0 {
		target := probe.Target{Host: h.Name, Runner: h.Runner, Layout: h.Layout, Release: id, Values: rc.EnvValues}
		results, err := probe.Run(ctx, rc.Env.Health, rc.Env.HealthWait, target)
		rc.Report.AddHealth(results)
		if err != nil {
			return exitcode.With(exitcode.Unhealthy, fmt.Errorf("adopted as release %s, but the health checks fail (nothing the running app uses changed): %w", id, err))
		}
	}
	return nil
}

// Manifest is the manifest of an adopted release: its files as the
// server listed them, sorted, with the normalised modes of a release.
func Manifest(id string, files []server.LiveFile, now time.Time) *archive.Manifest {
	m := &archive.Manifest{Release: id, Created: now.UTC().Format(time.RFC3339)}
	for _, f := range files {
		af := archive.File{Path: f.Path, Size: f.Size, SHA256: f.SHA256, Link: f.Link, Mode: archive.ModeFile}
		switch {
		case f.Link != "":
			af.Mode, af.Size = 0o777, 0
		case f.Mode&0o111 != 0:
			af.Mode = archive.ModeExec
		}
		m.Files = append(m.Files, af)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	return m
}

func treeEntries(files []archive.File) []server.TreeEntry {
	out := make([]server.TreeEntry, len(files))
	for i, f := range files {
		out[i] = server.TreeEntry{Path: f.Path, SHA256: f.SHA256, Link: f.Link}
	}
	return out
}

// Instructions say what is left to do on a host after its adoption: the
// change of the web server's root from the live directory to the same
// files under current, and where the app's services now start from.
func Instructions(a *config.Adopt, l server.Layout, id string) []string {
	var out []string
	if a.WebRoot != "" {
		from := liveAbs(l, a.App[a.WebRoot])
		to := path.Join(l.CurrentLink(), a.WebRoot)
		out = append(out,
			fmt.Sprintf("change the web server's root from %s to %s (the same files, verified): in nginx, `root %s;` becomes `root %s;`, then `nginx -t && nginx -s reload`", from, to, from, to),
			"its root then follows every deploy and rollback, as current switches")
	}
	out = append(out, fmt.Sprintf("release %s is live and a rollback target; the next deploy starts the app from %s with the services' restart commands, which must stop the running one", id, l.CurrentLink()))
	return out
}

// liveAbs is a live path of the adopt block on the server.
func liveAbs(l server.Layout, p string) string {
	if path.IsAbs(p) {
		return p
	}
	return path.Join(l.Root, p)
}

// discard removes what a failed adoption staged of release id, unless
// current points at it already; the data's backup and links into shared/
// stay, and a later adoption takes them as they are.
func discard(ctx context.Context, h *fleet.Host, id string) {
	cmd, err := server.DiscardRelease(h.Layout, id)
	if err == nil {
		_, err = h.Run(context.WithoutCancel(ctx), cmd)
	}
	if err != nil {
		h.Log.Warnf("discard the release %s a failed adoption staged: %v", id, err)
	}
}
