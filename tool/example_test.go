package tool_test

import (
	"context"
	"encoding/json"
	"fmt"

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
