package node

import "sync"

// workers runs the node's goroutines and lets Close wait for them. Once
// stop is called, go refuses to start more, so none can start after
// Close began to wait. Any goroutine may call go and closed; Close calls
// stop and wait.
type workers struct {
	mu      sync.Mutex
	stopped bool // guarded by mu
	wg      sync.WaitGroup
}

// goDo runs f in a new goroutine unless the node is closing, and reports
// whether it did.
func (w *workers) goDo(f func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
	return true
}

// closed reports whether the node is closing.
func (w *workers) closed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// stop refuses new goroutines; it reports false if it was called before.
func (w *workers) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := !w.stopped
	w.stopped = true
	return first
}

// wait waits for every goroutine started with goDo.
func (w *workers) wait() { w.wg.Wait() }
