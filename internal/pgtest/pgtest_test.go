package pgtest

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestInCI(t *testing.T) {
	for _, tt := range []struct {
		ci   string
		want bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}, {"yes", true}} {
		t.Setenv("CI", tt.ci)
		if got := InCI(); got != tt.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", tt.ci, got, tt.want)
		}
	}
}

func TestWithParam(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://h/db", "postgres://h/db?schema=a+b"},
		{"postgres://h/db?sslmode=disable", "postgres://h/db?sslmode=disable&schema=a+b"},
	} {
		if got := WithParam(tt.in, "schema", "a b"); got != tt.want {
			t.Errorf("WithParam(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSchema: each test gets a schema of its own, gone with everything in it once
// the test ended.
func TestSchema(t *testing.T) {
	var names [2]string
	for i := range names {
		t.Run("test", func(t *testing.T) {
			names[i] = Schema(t)
			conn, err := Connect(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{names[i]}.Sanitize()+
				"; CREATE TABLE "+pgx.Identifier{names[i], "t"}.Sanitize()+" (x int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if names[0] == "" {
		t.Skip("no PostgreSQL")
	}
	if names[0] == names[1] || !strings.HasPrefix(names[0], SchemaPrefix) {
		t.Errorf("schemas %q: want two distinct, named %s…", names, SchemaPrefix)
	}
	conn, err := Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)", names[:]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d of the schemas %q left after their tests", n, names)
	}
}
