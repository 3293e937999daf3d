package ui

import (
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
)

// maxBurst bounds how many typed characters one burst hands over.
const maxBurst = 4096

// burstWait is how long a burst waits for its next character: a paste
// typed by the terminal comes in chunks (tcell reads 128 bytes at a
// time). Only a burst waits: a person typing never starts one.
const burstWait = 5 * time.Millisecond

// termScreen is the terminal screen as the window reads it. It does two
// things tview does not:
//
//   - Focus events (the terminal window gained or lost the focus) go to
//     onFocus: tview drops them.
//   - Characters that are already queued behind one another (a paste that
//     a terminal without bracketed paste types as keystrokes: 22 KB come
//     as 22,000 key events) are handed over as one paste, so the window
//     redraws once per burst instead of once per character. A person
//     typing never has two characters queued. Only plain characters join
//     a burst: Enter, the arrows, Ctrl and Alt keys act as keys.
//
// PollEvent is called by one goroutine only (tview's).
type termScreen struct {
	tcell.Screen
	onFocus func(focused bool)

	once    sync.Once
	events  chan tcell.Event // the terminal's events, read ahead
	out     []tcell.Event    // events to hand over before polling again
	held    tcell.Event      // an event polled while ending a burst
	hasHeld bool
	pasting bool // inside a bracketed paste the terminal sent
}

// readAhead moves the terminal's events to s.events until the screen is
// finalised (its nil event goes too).
func (s *termScreen) readAhead() {
	s.events = make(chan tcell.Event, 256)
	go func() {
		for {
			ev := s.Screen.PollEvent()
			s.events <- ev
			if ev == nil {
				return
			}
		}
	}()
}

// next is the held event, or the next one from the terminal.
func (s *termScreen) next() tcell.Event {
	if s.hasHeld {
		ev := s.held
		s.held, s.hasHeld = nil, false
		return ev
	}
	return <-s.events
}

// pending reports whether next would not block.
func (s *termScreen) pending() bool { return s.hasHeld || len(s.events) > 0 }

// waitPending reports whether an event comes within d.
func (s *termScreen) waitPending(d time.Duration) bool {
	if s.pending() {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev := <-s.events:
		s.held, s.hasHeld = ev, true
		return true
	case <-t.C:
		return false
	}
}

// HasPendingEvent counts the events this screen holds too.
func (s *termScreen) HasPendingEvent() bool {
	s.once.Do(s.readAhead)
	return len(s.out) > 0 || s.pending()
}

// PollEvent returns the next event, turning focus events into onFocus
// calls and bursts of characters into pastes.
func (s *termScreen) PollEvent() tcell.Event {
	s.once.Do(s.readAhead)
	for {
		if len(s.out) > 0 {
			ev := s.out[0]
			s.out = s.out[1:]
			return ev
		}
		ev := s.next()
		switch e := ev.(type) {
		case *tcell.EventFocus:
			if s.onFocus != nil {
				s.onFocus(e.Focused)
			}
			continue
		case *tcell.EventPaste:
			s.pasting = e.Start()
		case *tcell.EventKey:
			if !s.pasting && typedChar(e) && s.pending() {
				s.burst(e)
				continue
			}
		}
		return ev
	}
}

// burst collects the characters queued after first. Two or more become
// a paste (start, the characters, end); the event that ends the burst is
// held for the next call.
func (s *termScreen) burst(first *tcell.EventKey) {
	keys := []tcell.Event{first}
	for len(keys) < maxBurst && (s.pending() || len(keys) > 1 && s.waitPending(burstWait)) {
		ev := s.next()
		if k, ok := ev.(*tcell.EventKey); ok && typedChar(k) {
			keys = append(keys, ev)
			continue
		}
		s.held, s.hasHeld = ev, true
		break
	}
	if len(keys) == 1 {
		s.out = append(s.out, first)
		return
	}
	s.out = append(s.out, tcell.NewEventPaste(true))
	s.out = append(s.out, keys...)
	s.out = append(s.out, tcell.NewEventPaste(false))
}

// typedChar reports whether ev is a plain character (no Ctrl or Alt).
func typedChar(ev *tcell.EventKey) bool {
	return ev.Key() == tcell.KeyRune && ev.Modifiers()&^tcell.ModShift == 0
}
