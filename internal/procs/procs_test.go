package procs

import (
	"runtime"
	"testing"
)

func TestSetForBlockingIO(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, env := range []string{"", "0", "many"} { // not a number the runtime takes
		t.Setenv("GOMAXPROCS", env)
		runtime.SetDefaultGOMAXPROCS()
		def := runtime.GOMAXPROCS(0)
		want := def + 1
		if def < runtime.NumCPU() {
			want = def // a CPU quota sets the default
		}
		for range 2 { // a second call sets the same number
			if got := SetForBlockingIO(); got != want || runtime.GOMAXPROCS(0) != want {
				t.Fatalf("GOMAXPROCS=%q: SetForBlockingIO = %d, GOMAXPROCS %d; want %d (default %d, %d CPUs)",
					env, got, runtime.GOMAXPROCS(0), want, def, runtime.NumCPU())
			}
		}
	}

	// A number in the environment is the user's: left alone.
	runtime.SetDefaultGOMAXPROCS()
	set := runtime.GOMAXPROCS(0) + 3
	t.Setenv("GOMAXPROCS", "7")
	runtime.GOMAXPROCS(set)
	if got := SetForBlockingIO(); got != set || runtime.GOMAXPROCS(0) != set {
		t.Fatalf("with GOMAXPROCS set: SetForBlockingIO = %d, GOMAXPROCS %d; want %d", got, runtime.GOMAXPROCS(0), set)
	}
}
