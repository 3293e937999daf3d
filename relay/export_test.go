package relay

// NewTamperingServer is newTamperingServer for relay_test.
var NewTamperingServer = newTamperingServer
