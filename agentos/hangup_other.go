//go:build !linux

package agentos

import "net"

// hangups would tell the streams served from connections taken over when their
// clients leave; off Linux, each stream reads its connection itself instead.
type hangups struct{}

func (*hangups) watch(net.Conn, func()) (unwatch func()) { return nil }

func (*hangups) wait() {}
