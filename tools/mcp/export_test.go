package mcp

// OnListChanged makes c call f each time the server says its tools changed.
func OnListChanged(c *Client, f func()) {
	c.mu.Lock()
	c.changed = f
	c.mu.Unlock()
}
