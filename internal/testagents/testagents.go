// Package testagents holds agents that the tests of several packages share. It
// is imported by tests only.
package testagents

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/model/scripted"
	"github.com/kern-dev/kern/tool"
)

// Mailer is an agent whose model asks to send a mail to ada (call call_1 of the
// tool send_mail), a call that waits for a person's confirmation, and then
// answers "done: " and the call's result. sent counts the mails sent.
func Mailer(sent *atomic.Int32) *agent.Agent {
	send := tool.Func("send_mail", "Sends a mail.", func(ctx context.Context, args struct {
		To string `json:"to"`
	}) (string, error) {
		sent.Add(1)
		return "sent to " + args.To, nil
	}, tool.RequiresConfirmation())
	m := &scripted.Model{Respond: func(req *model.Request) scripted.Turn {
		for i := len(req.Messages) - 1; i >= 0; i-- {
			if msg := req.Messages[i]; msg.Role == model.RoleTool {
				return scripted.Turn{Text: "done: " + msg.Content}
			}
		}
		return scripted.Turn{Text: "Sending. ", ToolCalls: []model.ToolCall{{ID: "call_1", Name: "send_mail", Arguments: json.RawMessage(`{"to":"ada"}`)}}}
	}}
	return &agent.Agent{Name: "Mailer", Model: m, Tools: []tool.Tool{send}}
}
