//go:build race

package scripted_test

const raceEnabled = true
