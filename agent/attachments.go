package agent

import (
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
)

// AttachmentsOf returns the attachments that o gives a run (see WithAttachments),
// for runners that hand them on to agents: a workflow gives them to its first
// agent step.
func AttachmentsOf(o *run.Options) []model.Attachment { return attachments(o) }
