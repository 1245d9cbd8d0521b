module kern

go 1.26

require (
	github.com/google/jsonschema-go v0.4.3
	github.com/google/uuid v1.6.0
	go.uber.org/goleak v1.3.0
)
