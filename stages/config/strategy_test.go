package config

import (
	"strings"
	"testing"
	"time"
)

// strategyEnv parses an environment of three hosts with env appended to it.
func strategyEnv(env string) (*Environment, error) {
	text := "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod:\n" +
		"    hosts: [d@web1, d@web2, d@web3]\n    root: /srv\n" + env
	cfg, err := Parse([]byte(text), "stagecoach.yml", "/p")
	if err != nil {
		return nil, err
	}
	return &cfg.Environments[0], nil
}

func TestStrategy(t *testing.T) {
	for _, tt := range []struct {
		name, env string
		want      Strategy
	}{
		{"defaults", "", Strategy{Parallel: DefaultParallel, OnFailure: Revert}},
		{"the older parallel key", "    parallel: 2\n", Strategy{Parallel: 2, OnFailure: Revert}},
		{"every key", "    strategy:\n      parallel: 8\n      canary: 1\n      pause: 30s\n      batch: \"25%\"\n      on_failure: continue\n",
			Strategy{Parallel: 8, Canary: 1, Pause: 30 * time.Second, Batch: "25%", OnFailure: Continue}},
		{"a batch by number", "    strategy: {batch: 2, on_failure: stop}\n", Strategy{Parallel: DefaultParallel, Batch: "2", OnFailure: Stop}},
		{"every host a canary", "    strategy: {canary: 3}\n", Strategy{Parallel: DefaultParallel, Canary: 3, OnFailure: Revert}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := strategyEnv(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if e.Strategy != tt.want {
				t.Errorf("strategy %+v, want %+v", e.Strategy, tt.want)
			}
			if e.Parallel != tt.want.Parallel {
				t.Errorf("parallel %d, want %d as strategy.parallel", e.Parallel, tt.want.Parallel)
			}
		})
	}
}

func TestStrategyErrors(t *testing.T) {
	for _, tt := range []struct{ name, env, want string }{
		{"both parallel keys", "    parallel: 2\n    strategy: {parallel: 3}\n",
			`stagecoach.yml:7: environments.prod.parallel: parallel and strategy.parallel are both set; keep strategy.parallel`},
		{"old parallel zero", "    parallel: 0\n", `stagecoach.yml:7: environments.prod.parallel: must be at least 1, got 0`},
		{"parallel zero", "    strategy:\n      parallel: 0\n", `stagecoach.yml:8: environments.prod.strategy.parallel: must be at least 1, got 0`},
		{"negative canary", "    strategy:\n      canary: -1\n", `stagecoach.yml:8: environments.prod.strategy.canary: must be 0 (no canary) or more hosts, got -1`},
		{"canary beyond the hosts", "    strategy:\n      canary: 4\n", `stagecoach.yml:8: environments.prod.strategy.canary: 4 canary hosts, but the environment has 3`},
		{"pause without canary", "    strategy:\n      pause: 10s\n", `stagecoach.yml:8: environments.prod.strategy.pause: pause waits after the canary, but there is none`},
		{"pause not a duration", "    strategy:\n      canary: 1\n      pause: 10\n", `stagecoach.yml:9: environments.prod.strategy.pause: "10" is not a duration like 30s`},
		{"batch words", "    strategy:\n      batch: half\n", `stagecoach.yml:8: environments.prod.strategy.batch: "half" is not a number of hosts like 2 or a share of them like "25%"`},
		{"batch zero", "    strategy:\n      batch: 0\n", `stagecoach.yml:8: environments.prod.strategy.batch: "0" activates no host`},
		{"batch zero percent", "    strategy:\n      batch: 0%\n", `stagecoach.yml:8: environments.prod.strategy.batch: "0%" activates no host`},
		{"batch beyond all", "    strategy:\n      batch: 150%\n", `stagecoach.yml:8: environments.prod.strategy.batch: "150%" is more than all the hosts`},
		{"batch a list", "    strategy:\n      batch: [1]\n", `stagecoach.yml:8: environments.prod.strategy.batch: expected a string, got a list`},
		{"unknown policy", "    strategy:\n      on_failure: rollback\n", `stagecoach.yml:8: environments.prod.strategy.on_failure: "rollback" is not a policy; expected one of: revert, stop, continue`},
		{"unknown key", "    strategy:\n      canaries: 1\n", `stagecoach.yml:8: environments.prod.strategy: unknown key "canaries" (expected one of: parallel, canary, pause, batch, on_failure)`},
		{"not a mapping", "    strategy: rolling\n", `stagecoach.yml:7: environments.prod.strategy: expected a mapping with keys: parallel, canary, pause, batch, on_failure; got "rolling"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := strategyEnv(tt.env)
			if err == nil {
				t.Fatalf("no error; want %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}
}

func TestBatchSize(t *testing.T) {
	for _, tt := range []struct {
		batch       string
		hosts, want int
	}{
		{"", 7, 7}, {"", 0, 1}, {"2", 7, 2}, {"25%", 4, 1}, {"25%", 7, 2}, {"25%", 32, 8}, {"100%", 5, 5}, {"1%", 3, 1}, {"10", 3, 10},
	} {
		if got := (Strategy{Batch: tt.batch}).BatchSize(tt.hosts); got != tt.want {
			t.Errorf("batch %q of %d hosts: %d, want %d", tt.batch, tt.hosts, got, tt.want)
		}
	}
}

func TestMigrationsOnce(t *testing.T) {
	cfg, err := Parse([]byte("app: shop\ncomponents: {web: {watch: [a], output: d}}\nmigrations: {run: ./migrate, once: true}\n"), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Migrations.Once {
		t.Error("migrations.once not read")
	}
	_, err = Parse([]byte("app: shop\ncomponents: {web: {watch: [a], output: d}}\nmigrations:\n  run: ./migrate\n  once: yes please\n"), "stagecoach.yml", "/p")
	if want := `stagecoach.yml:5: migrations.once: expected true or false, got "yes please"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
}
