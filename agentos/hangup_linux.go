package agentos

import (
	"net"
	"sync"
	"syscall"
)

// hangups tells the streams served from connections taken over (see
// hijackStream) when their clients leave, with one goroutine for all of them
// that waits on an epoll instance for the peers of their connections to close
// (EPOLLRDHUP), rather than a goroutine a stream blocked reading its connection.
// The goroutine runs while a stream is watched.
type hangups struct {
	mu   sync.Mutex        // guards the fields below
	on   bool              // the goroutine runs
	epfd int               // the epoll instance, while on
	wake [2]int            // a pipe that wakes the goroutine: the last stream left
	done chan struct{}     // closed once the goroutine returned
	next uint64            // the key of the next stream watched
	left map[uint64]func() // the streams watched (until unwatched): what to call once their clients left; nil once called
}

// wakeKey is the key of the pipe's events; streams' keys start at 1.
const wakeKey = 0

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
	if !h.on && !h.startLocked() {
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
		// epfd is open while a stream is watched: the goroutine closes it only
		// once every stream was unwatched.
		_ = rc.Control(func(fd uintptr) { _ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
		delete(h.left, key)
		h.stopIfIdleLocked()
	}
}

// startLocked makes the epoll instance and its pipe, and starts the goroutine.
func (h *hangups) startLocked() bool {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeKey}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return false
	}
	h.on, h.epfd, h.wake, h.done = true, epfd, p, make(chan struct{})
	go h.run(epfd, p, h.done)
	return true
}

// stopIfIdleLocked wakes the goroutine to return when no stream is watched.
func (h *hangups) stopIfIdleLocked() {
	if len(h.left) == 0 && h.on {
		_, _ = syscall.Write(h.wake[1], []byte{0})
	}
}

// run waits for the clients of the streams watched to leave, and tells them,
// until no stream is watched any more.
func (h *hangups) run(epfd int, wake [2]int, done chan struct{}) {
	defer close(done)
	evs := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(epfd, evs, -1)
		if err != nil {
			continue // EINTR: nothing else may fail on an epoll instance open
		}
		for _, ev := range evs[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if key == wakeKey {
				var b [16]byte
				_, _ = syscall.Read(wake[0], b[:])
				continue
			}
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
		h.mu.Lock()
		if len(h.left) == 0 {
			h.on, h.done = false, nil
			h.mu.Unlock()
			syscall.Close(epfd)
			syscall.Close(wake[0])
			syscall.Close(wake[1])
			return
		}
		h.mu.Unlock()
	}
}

// wait waits for the goroutine to return, once no stream is watched.
func (h *hangups) wait() {
	h.mu.Lock()
	done := h.done
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}
