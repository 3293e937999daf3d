// Package transfer owns what a file transfer is apart from the network
// (PROTOCOL §15): the offer that announces a file and carries its key
// (sent through the Double Ratchet like a message), the file's chunks
// sealed with that key so that each is checked before it is written, and
// the receiver's side on disk: a partial file kept apart until it is
// whole and its SHA-256 matches, what it holds so that a transfer resumes
// after a crash, a clear error when the disk is full, and a name that is
// safe in the downloads folder (no path, no control characters, no
// leading dot, never over an existing file, never executable).
//
// No networking: the node moves offers and chunks.
package transfer
