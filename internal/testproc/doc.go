// Package testproc is the support of tests that run certchat as processes:
// it builds the chat binary once per test binary and starts `chat relay`
// processes. It is imported only from _test.go files.
//
// The chat binary is built on first use of [ChatBinary], with -race when
// the test binary itself has the race detector (so races in the processes
// fail the tests too), into a temporary folder named after this process.
// [Run], called from the package's TestMain, removes that folder when the
// tests end:
//
//	func TestMain(m *testing.M) { os.Exit(testproc.Run(m)) }
//
// Folders left by test processes that are gone (a crash, a timeout, a
// package without that TestMain) are removed by the next build.
//
// [StartRelay] runs `chat relay` on 127.0.0.1, reads the address it prints
// and stops it at the test's cleanup; the returned [Relay] can also be
// stopped, killed or waited for by the test.
//
// [SkipUnlessCI] is the rule of tests that need something of the machine
// (root, tmux, openssl): they skip without it, unless CERTCHAT_CI is set,
// when they fail instead: CI must not pass by skipping.
package testproc
