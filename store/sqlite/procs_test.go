package sqlite

import (
	"runtime"
	"testing"
)

func TestSetServerProcs(t *testing.T) {
	defer runtime.SetDefaultGOMAXPROCS()
	t.Setenv("GOMAXPROCS", "")
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	for range 2 { // a second call changes nothing
		if got := SetServerProcs(); got != def+1 || runtime.GOMAXPROCS(0) != def+1 {
			t.Fatalf("SetServerProcs = %d, GOMAXPROCS %d; want %d (the default, %d, and one)", got, runtime.GOMAXPROCS(0), def+1, def)
		}
	}

	// The environment's number is the user's: left alone.
	t.Setenv("GOMAXPROCS", "5")
	runtime.GOMAXPROCS(5)
	if got := SetServerProcs(); got != 5 || runtime.GOMAXPROCS(0) != 5 {
		t.Fatalf("with GOMAXPROCS=5 set: SetServerProcs = %d, GOMAXPROCS %d; want 5", got, runtime.GOMAXPROCS(0))
	}
}
