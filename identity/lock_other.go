//go:build !unix

package identity

// lockFile is a no-op where flock is unavailable: concurrent writers from
// several processes are then not serialised.
func lockFile(path string) (unlock func(), err error) { return func() {}, nil }
