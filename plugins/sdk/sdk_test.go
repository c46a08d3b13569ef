package sdk

import (
	"os/exec"
	"testing"
)

func TestRequestConfig(t *testing.T) {
	type cfg struct {
		Message string `json:"message"`
		Retries int    `json:"retries"`
	}
	tests := []struct {
		name    string
		json    string
		want    cfg
		wantErr string
	}{
		{"no block keeps defaults", "", cfg{Message: "default", Retries: 1}, ""},
		{"values", `{"message":"hi","retries":3}`, cfg{Message: "hi", Retries: 3}, ""},
		{"partial", `{"retries":2}`, cfg{Message: "default", Retries: 2}, ""},
		{"wrong type", `{"retries":"many"}`, cfg{}, "decode plugin config: json: cannot unmarshal string into Go struct field cfg.retries of type int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cfg{Message: "default", Retries: 1}
			err := Request{config: []byte(tt.json)}.Config(&got)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestExecResultErr(t *testing.T) {
	tests := []struct {
		res  ExecResult
		want string
	}{
		{ExecResult{}, ""},
		{ExecResult{ExitCode: 1}, "exit status 1"},
		{ExecResult{ExitCode: 2, Stderr: []byte("a\nb\nc\nd\ne\nf\n")}, "exit status 2: b\nc\nd\ne\nf"},
	}
	for _, tt := range tests {
		err := tt.res.Err()
		if got := ""; err != nil {
			got = err.Error()
			if got != tt.want {
				t.Errorf("%+v: %q, want %q", tt.res, got, tt.want)
			}
		} else if tt.want != "" {
			t.Errorf("%+v: no error, want %q", tt.res, tt.want)
		}
	}
}

func TestQuoteThroughShell(t *testing.T) {
	for _, s := range []string{"", "plain", "two words", "it's", `"$HOME" $(id) ; rm -rf /`, "line\nbreak"} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) through sh = %q, %v", s, out, err)
		}
	}
}
