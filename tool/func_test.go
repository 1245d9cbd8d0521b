package tool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-dev/kern/tool"
)

type weatherArgs struct {
	City string   `json:"city" jsonschema:"the city, e.g. Paris"`
	Days int      `json:"days,omitempty" jsonschema:"how many days to forecast"`
	Tags []string `json:"tags,omitzero"`
	Geo  *geo     `json:"geo,omitempty"`
	When time.Time
}

type geo struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

type noArgs struct{}

// property is the part of a JSON Schema the tests look at.
type property struct {
	Type                 any                 `json:"type"`
	Description          string              `json:"description"`
	Properties           map[string]property `json:"properties"`
	Required             []string            `json:"required"`
	AdditionalProperties *bool               `json:"additionalProperties"`
}

func echo[Args any](ctx context.Context, args Args) (Args, error) { return args, nil }

func TestFuncSchema(t *testing.T) {
	t.Parallel()
	no := false
	tests := []struct {
		name string
		tool tool.Tool
		want property
	}{
		{
			name: "struct",
			tool: tool.Func("get_weather", "Get the weather.", echo[weatherArgs]),
			want: property{
				Type: "object",
				Properties: map[string]property{
					"city": {Type: "string", Description: "the city, e.g. Paris"},
					"days": {Type: "integer", Description: "how many days to forecast"},
					"tags": {Type: []any{"null", "array"}},
					"geo": {
						Type:                 []any{"null", "object"},
						Properties:           map[string]property{"lat": {Type: "number"}, "lon": {Type: "number"}},
						Required:             []string{"lat", "lon"},
						AdditionalProperties: &no,
					},
					"When": {Type: "string"},
				},
				Required:             []string{"city", "When"},
				AdditionalProperties: &no,
			},
		},
		{
			name: "pointer to struct",
			tool: tool.Func("geo", "", echo[*geo]),
			want: property{
				Type:                 "object",
				Properties:           map[string]property{"lat": {Type: "number"}, "lon": {Type: "number"}},
				Required:             []string{"lat", "lon"},
				AdditionalProperties: &no,
			},
		},
		{
			name: "empty struct",
			tool: tool.Func("now", "", echo[noArgs]),
			want: property{Type: "object", Properties: map[string]property{}, AdditionalProperties: &no},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tool.Validate(tt.tool); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			var got property
			if err := json.Unmarshal(tt.tool.Definition().Parameters, &got); err != nil {
				t.Fatalf("parameters: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parameters = %s\nwant %+v", tt.tool.Definition().Parameters, tt.want)
			}
		})
	}
}

func TestFuncDefinition(t *testing.T) {
	t.Parallel()
	d := tool.Func("get_weather", "Get the weather.", echo[weatherArgs]).Definition()
	if d.Name != "get_weather" || d.Description != "Get the weather." {
		t.Errorf("Definition() = %q, %q; want get_weather, Get the weather.", d.Name, d.Description)
	}
}

func TestCallInvalidArguments(t *testing.T) {
	t.Parallel()
	called := false
	tl := tool.Func("get_weather", "", func(ctx context.Context, args weatherArgs) (string, error) {
		called = true
		return "", nil
	})
	tests := []struct {
		name string
		args string
		want string // in the error message
	}{
		{"invalid JSON", `{"city":`, "unexpected end of JSON input"},
		{"not an object", `["Paris"]`, `want "object"`},
		{"missing required", `{"When":"2025-01-01T00:00:00Z"}`, `missing properties: ["city"]`},
		{"empty args with required", ``, `missing properties: ["city" "When"]`},
		{"wrong type", `{"city":42,"When":"2025-01-01T00:00:00Z"}`, `want "string"`},
		{"fraction for integer", `{"city":"Paris","days":1.5,"When":"2025-01-01T00:00:00Z"}`, `want "integer"`},
		{"unknown field", `{"city":"Paris","country":"FR","When":"2025-01-01T00:00:00Z"}`, `additional properties ["country"]`},
		{"field in wrong case", `{"City":"Paris","When":"2025-01-01T00:00:00Z"}`, `additional properties ["City"]`},
		{"nested wrong type", `{"city":"Paris","geo":{"lat":"north","lon":2},"When":"2025-01-01T00:00:00Z"}`, `want "number"`},
		{"valid schema, bad Go value", `{"city":"Paris","When":"yesterday"}`, `cannot parse`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tl.Call(context.Background(), json.RawMessage(tt.args))
			if !errors.Is(err, tool.ErrInvalidArguments) {
				t.Fatalf("Call(%s) error = %v, want ErrInvalidArguments", tt.args, err)
			}
			if !strings.HasPrefix(err.Error(), `tool "get_weather": invalid arguments: `) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Call(%s) error = %q, want it to contain %q", tt.args, err, tt.want)
			}
		})
	}
	if called {
		t.Error("fn was called with invalid arguments")
	}
}

func TestCallEmptyArguments(t *testing.T) {
	t.Parallel()
	for _, args := range []string{"", " ", "null", " null\n", "{}"} {
		t.Run(fmt.Sprintf("%q", args), func(t *testing.T) {
			t.Parallel()
			got, err := tool.Func("geo", "", func(ctx context.Context, args *noArgs) (bool, error) {
				return args != nil, nil
			}).Call(context.Background(), json.RawMessage(args))
			if err != nil || got != "true" {
				t.Errorf("Call(%q) = %q, %v; want true, nil", args, got, err)
			}
		})
	}
}

func TestCallResult(t *testing.T) {
	t.Parallel()
	call := func(tl tool.Tool) (string, error) {
		return tl.Call(context.Background(), json.RawMessage(`{"lat":48.85,"lon":2.35}`))
	}
	ret := func(v any) func(context.Context, geo) (any, error) {
		return func(context.Context, geo) (any, error) { return v, nil }
	}
	tests := []struct {
		name string
		tool tool.Tool
		want string
	}{
		{"string as is", tool.Func("t", "", func(ctx context.Context, g geo) (string, error) {
			return fmt.Sprintf("%.2f,%.2f", g.Lat, g.Lon), nil
		}), "48.85,2.35"},
		{"struct as JSON", tool.Func("t", "", echo[geo]), `{"lat":48.85,"lon":2.35}`},
		{"pointer as JSON", tool.Func("t", "", echo[*geo]), `{"lat":48.85,"lon":2.35}`},
		{"number as JSON", tool.Func("t", "", func(ctx context.Context, g geo) (float64, error) { return g.Lat, nil }), "48.85"},
		{"string in interface as is", tool.Func("t", "", ret("plain")), "plain"},
		{"slice as JSON", tool.Func("t", "", ret([]int{1, 2})), "[1,2]"},
		{"nil as null", tool.Func("t", "", ret(nil)), "null"},
		{"raw JSON as is", tool.Func("t", "", ret(json.RawMessage(`{"ok":true}`))), `{"ok":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := call(tt.tool)
			if err != nil || got != tt.want {
				t.Errorf("Call = %q, %v; want %q, nil", got, err, tt.want)
			}
		})
	}
	t.Run("unencodable", func(t *testing.T) {
		t.Parallel()
		_, err := call(tool.Func("t", "", ret(make(chan int))))
		if err == nil || !strings.Contains(err.Error(), `tool "t": encode result`) {
			t.Errorf("Call error = %v, want an encode error", err)
		}
	})
}

func TestCallError(t *testing.T) {
	t.Parallel()
	errNotFound := errors.New("city not found")
	tests := []struct {
		name    string
		fn      func(context.Context, geo) (string, error)
		wantIs  []error
		wantMsg string
	}{
		{
			name:    "error passed through",
			fn:      func(context.Context, geo) (string, error) { return "ignored", errNotFound },
			wantIs:  []error{errNotFound},
			wantMsg: "city not found",
		},
		{
			name:    "panic with string",
			fn:      func(context.Context, geo) (string, error) { panic("boom") },
			wantIs:  []error{tool.ErrPanic},
			wantMsg: `tool "t": panic: boom`,
		},
		{
			name:    "panic with error",
			fn:      func(context.Context, geo) (string, error) { panic(errNotFound) },
			wantIs:  []error{tool.ErrPanic, errNotFound},
			wantMsg: `tool "t": panic: city not found`,
		},
		{
			name: "runtime panic",
			fn: func(context.Context, geo) (string, error) {
				var m map[string]int
				m["x"] = 1
				return "", nil
			},
			wantIs:  []error{tool.ErrPanic},
			wantMsg: `tool "t": panic: assignment to entry in nil map`,
		},
		{
			name:    "panic with nil",
			fn:      func(context.Context, geo) (string, error) { panic(nil) },
			wantIs:  []error{tool.ErrPanic},
			wantMsg: `tool "t": panic: panic called with nil argument`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tool.Func("t", "", tt.fn).Call(context.Background(), json.RawMessage(`{"lat":1,"lon":2}`))
			if got != "" {
				t.Errorf("Call result = %q, want empty", got)
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("Call error = %v, want errors.Is %v", err, target)
				}
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Errorf("Call error = %v, want %q", err, tt.wantMsg)
			}
		})
	}
}

type ctxKey struct{}

func TestCallContext(t *testing.T) {
	t.Parallel()
	tl := tool.Func("t", "", func(ctx context.Context, _ noArgs) (string, error) {
		v, _ := ctx.Value(ctxKey{}).(string)
		return v, nil
	})
	ctx := context.WithValue(context.Background(), ctxKey{}, "from caller")
	if got, err := tl.Call(ctx, nil); err != nil || got != "from caller" {
		t.Errorf("Call = %q, %v; want %q, nil", got, err, "from caller")
	}

	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := tl.Call(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Call with cancelled ctx = %q, %v; want context.Canceled", got, err)
	}
}

func TestSchemaCache(t *testing.T) {
	t.Parallel()
	a := tool.Func("a", "", echo[weatherArgs]).Definition().Parameters
	b := tool.Func("b", "", func(context.Context, weatherArgs) (string, error) { return "", nil }).Definition().Parameters
	c := tool.Func("c", "", echo[geo]).Definition().Parameters
	if &a[0] != &b[0] {
		t.Error("two tools with the same Args type do not share the schema")
	}
	if &a[0] == &c[0] {
		t.Error("tools with different Args types share the schema")
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	type fresh struct {
		N int `json:"n"`
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			tl := tool.Func("t", "", func(ctx context.Context, args fresh) (int, error) { return args.N * 2, nil })
			got, err := tl.Call(context.Background(), json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
			if want := fmt.Sprint(i * 2); err != nil || got != want {
				t.Errorf("Call = %q, %v; want %q, nil", got, err, want)
			}
		})
	}
	wg.Wait()
}

// staticTool is a Tool written by hand.
type staticTool tool.Definition

func (s staticTool) Definition() tool.Definition { return tool.Definition(s) }
func (s staticTool) Call(context.Context, json.RawMessage) (string, error) {
	return "", nil
}

func TestValidate(t *testing.T) {
	t.Parallel()
	obj := json.RawMessage(`{"type":"object"}`)
	tests := []struct {
		name    string
		tool    tool.Tool
		wantMsg string // in the error; "" for a valid tool
	}{
		{"func", tool.Func("get_weather-2", "", echo[geo]), ""},
		{"func 64 chars", tool.Func(strings.Repeat("a", 64), "", echo[geo]), ""},
		{"static", staticTool{Name: "static", Parameters: json.RawMessage(" {} ")}, ""},
		{"nil", nil, "nil tool"},
		{"empty name", tool.Func("", "", echo[geo]), `tool "": invalid definition: name must match`},
		{"long name", tool.Func(strings.Repeat("a", 65), "", echo[geo]), "name must match"},
		{"space in name", tool.Func("get weather", "", echo[geo]), "name must match"},
		{"dot in name", tool.Func("weather.get", "", echo[geo]), "name must match"},
		{"non-ASCII name", tool.Func("météo", "", echo[geo]), "name must match"},
		{"nil func", tool.Func[geo, string]("t", "", nil), `tool "t": invalid definition: nil function`},
		{"non-struct args", tool.Func("t", "", echo[string]), "arguments type string is not a struct"},
		{"map args", tool.Func("t", "", echo[map[string]any]), "is not a struct"},
		{"pointer to pointer", tool.Func("t", "", echo[**geo]), "is not a struct"},
		{"unsupported field", tool.Func("t", "", echo[struct{ C chan int }]), "unsupported"},
		{"static bad name", staticTool{Name: "a b", Parameters: obj}, "name must match"},
		{"static nil parameters", staticTool{Name: "s"}, "parameters must be a JSON object"},
		{"static array parameters", staticTool{Name: "s", Parameters: json.RawMessage(`[]`)}, "parameters must be a JSON object"},
		{"static broken parameters", staticTool{Name: "s", Parameters: json.RawMessage(`{"type":`)}, "parameters must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tool.Validate(tt.tool)
			if tt.wantMsg == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tool.ErrInvalidDefinition) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Validate = %v, want ErrInvalidDefinition containing %q", err, tt.wantMsg)
			}
			if _, ok := tt.tool.(staticTool); ok || tt.tool == nil {
				return
			}
			// A tool built by Func reports the same error from Call, and its
			// Definition still names it.
			if _, callErr := tt.tool.Call(context.Background(), nil); callErr != err {
				t.Errorf("Call error = %v, want %v", callErr, err)
			}
			if d := tt.tool.Definition(); d.Name == "" && tt.name != "empty name" {
				t.Errorf("Definition().Name is empty")
			}
		})
	}
}

func BenchmarkFunc(b *testing.B) {
	fn := func(ctx context.Context, args weatherArgs) (string, error) { return args.City, nil }
	tool.Func("get_weather", "Get the weather.", fn) // the schema is generated once per type
	b.ReportAllocs()
	for b.Loop() {
		tool.Func("get_weather", "Get the weather.", fn)
	}
}

func BenchmarkValidate(b *testing.B) {
	tl := tool.Func("get_weather", "Get the weather.", echo[weatherArgs])
	b.ReportAllocs()
	for b.Loop() {
		if err := tool.Validate(tl); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCall(b *testing.B) {
	tl := tool.Func("get_weather", "Get the weather.", func(ctx context.Context, args weatherArgs) (string, error) {
		return "sunny in " + args.City, nil
	})
	args := json.RawMessage(`{"city":"Paris","days":3,"When":"2025-06-01T12:00:00Z"}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tl.Call(ctx, args); err != nil {
			b.Fatal(err)
		}
	}
}
