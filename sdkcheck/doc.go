// Package sdkcheck holds no code: its tests run the official OpenAI and Anthropic Go
// SDKs against kern's fake servers (github.com/kern-dev/kern/model/openai/openaitest and
// github.com/kern-dev/kern/model/anthropic/anthropictest) and compare what the SDKs see with what kern's
// own clients see, to show that the fakes speak the real wire protocol. It is a
// separate module so that kern itself never depends on the SDKs. See README.md.
package sdkcheck
