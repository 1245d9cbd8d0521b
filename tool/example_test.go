package tool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/tool"
)

func ExampleFunc() {
	type weatherArgs struct {
		City string `json:"city" jsonschema:"the city, e.g. Paris"`
		Unit string `json:"unit,omitempty" jsonschema:"celsius (the default) or fahrenheit"`
	}
	type weather struct {
		City        string  `json:"city"`
		Temperature float64 `json:"temperature"`
		Unit        string  `json:"unit"`
	}
	getWeather := tool.Func("get_weather", "Get the current weather in a city.",
		func(ctx context.Context, args weatherArgs) (weather, error) {
			if args.Unit == "fahrenheit" {
				return weather{City: args.City, Temperature: 70.7, Unit: args.Unit}, nil
			}
			return weather{City: args.City, Temperature: 21.5, Unit: "celsius"}, nil
		})
	if err := tool.Validate(getWeather); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(getWeather.Definition().Parameters))

	ctx := context.Background()
	out, err := getWeather.Call(ctx, json.RawMessage(`{"city":"Paris"}`))
	fmt.Println(out, err)

	_, err = getWeather.Call(ctx, json.RawMessage(`{"city":"Paris","unit":"kelvin","country":"FR"}`))
	fmt.Println(err)
	// Output:
	// {"type":"object","properties":{"city":{"type":"string","description":"the city, e.g. Paris"},"unit":{"type":"string","description":"celsius (the default) or fahrenheit"}},"required":["city"],"additionalProperties":false}
	// {"city":"Paris","temperature":21.5,"unit":"celsius"} <nil>
	// tool "get_weather": invalid arguments: validating root: unexpected additional properties ["country"]
}

// A tool whose calls may hang or fail gets a timeout per attempt and a retry
// policy; what the model reads when every attempt failed is the last error.
func ExampleWithPolicy() {
	type queryArgs struct {
		Query string `json:"query"`
	}
	search := tool.Func("search", "Searches the web", func(ctx context.Context, a queryArgs) (string, error) {
		<-ctx.Done() // a backend that never answers
		return "", ctx.Err()
	})
	bounded := tool.WithPolicy(search, tool.Policy{
		Timeout: 10 * time.Millisecond,
		Retry:   &run.RetryPolicy{Attempts: 2, Backoff: time.Millisecond, Retryable: run.RetryOn(run.ErrTimeout)},
	})
	_, err := bounded.Call(context.Background(), json.RawMessage(`{"query":"dragons"}`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, run.ErrTimeout))
	// Output:
	// after 2 attempts: tool "search": timed out after 10ms
	// true
}
