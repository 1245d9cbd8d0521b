package run

import "time"

// SetRegistryClock makes r's memory of intents and ended runs tell time by now,
// so that a test ages them without sleeping. Call it before r is used.
func SetRegistryClock(r *Registry, now func() time.Time) {
	r.intents.now, r.ended.now = now, now
}
