package agentos

import (
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// hangups tells the streams served from connections taken over (see
// hijackStream) when their clients leave, with one goroutine for all of them
// that waits on an epoll instance for the peers of their connections to close
// (EPOLLRDHUP), rather than a goroutine a stream blocked reading its connection.
// The goroutine waits for the epoll instance through the runtime's poller, never
// in a blocking epoll_wait: a goroutine blocked in a system call holds its P
// until the runtime's monitor takes it back (10–20 ms), which on a server of
// two Ps left one to run every other goroutine, cancels included. The goroutine
// runs while a stream is watched.
type hangups struct {
	mu   sync.Mutex        // guards the fields below
	ep   *os.File          // the epoll instance, while a stream is watched
	epfd int               // ep's descriptor (ep.Fd would make it blocking)
	done chan struct{}     // closed once every goroutine started returned
	next uint64            // the key of the next stream watched
	left map[uint64]func() // the streams watched (until unwatched): what to call once their clients left; nil once called
}

// watch calls left once the client of conn closes it or the connection fails,
// until unwatch is called. It returns nil, and watches nothing, if conn cannot be
// watched so (not a socket): the caller then reads conn itself.
func (h *hangups) watch(conn net.Conn, left func()) (unwatch func()) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ep == nil && !h.startLocked() {
		return nil
	}
	h.next++
	key := h.next
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(key), Pad: int32(key >> 32)}
	epfd := h.epfd
	cerr := rc.Control(func(fd uintptr) { err = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) })
	if cerr != nil || err != nil {
		h.stopIfIdleLocked()
		return nil
	}
	if h.left == nil {
		h.left = make(map[uint64]func())
	}
	h.left[key] = left
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.left[key]; !ok {
			return // unwatched already: epfd may be another's by now
		}
		// epfd is open while a stream is watched: it is closed only once every
		// stream was unwatched.
		_ = rc.Control(func(fd uintptr) { _ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
		delete(h.left, key)
		h.stopIfIdleLocked()
	}
}

// startLocked makes the epoll instance, registered with the runtime's poller,
// and starts the goroutine.
func (h *hangups) startLocked() bool {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return false
	}
	// A descriptor in non-blocking mode makes a File the runtime polls; one
	// that could not be registered has no deadlines.
	ep := os.NewFile(uintptr(epfd), "hangups")
	rc, err := ep.SyscallConn()
	if err != nil || ep.SetReadDeadline(time.Time{}) != nil {
		ep.Close()
		return false
	}
	prev := h.done
	h.ep, h.epfd, h.done = ep, epfd, make(chan struct{})
	go h.run(rc, prev, h.done)
	return true
}

// stopIfIdleLocked closes the epoll instance when no stream is watched, which
// ends its goroutine's wait.
func (h *hangups) stopIfIdleLocked() {
	if len(h.left) == 0 && h.ep != nil {
		h.ep.Close()
		h.ep = nil
	}
}

// run waits for the clients of the streams watched on rc's epoll instance to
// leave, and tells them, until the instance is closed. It closes done once it
// and the goroutine of the previous instance, if any (see prev), returned.
func (h *hangups) run(rc syscall.RawConn, prev <-chan struct{}, done chan struct{}) {
	defer func() {
		if prev != nil {
			<-prev
		}
		close(done)
	}()
	evs := make([]syscall.EpollEvent, 64)
	for {
		var n int
		err := rc.Read(func(fd uintptr) bool {
			var err error
			n, err = syscall.EpollWait(int(fd), evs, 0)
			if err != nil {
				n = 0
				return true // EINTR: nothing else may fail on an epoll instance open
			}
			return n > 0 // none ready: wait until the instance is readable
		})
		if err != nil {
			return // closed: no stream is watched any more
		}
		for _, ev := range evs[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			h.mu.Lock()
			left := h.left[key]
			if left != nil {
				h.left[key] = nil
			}
			h.mu.Unlock()
			if left != nil {
				left()
			}
		}
	}
}

// wait waits for the goroutines to return, once no stream is watched.
func (h *hangups) wait() {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}
