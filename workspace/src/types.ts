// types.ts - the shapes of the desk's contract (CONTRACT part 2) the
// workspace reads; fields other helpers add later are optional.
export type Status = "bot" | "open" | "pending" | "snoozed" | "resolved";
export type Priority = "urgent" | "high" | "normal" | "low";

export interface LastMessage {
  seq: number;
  direction: string;
  kind: string;
  text: string;
  time: string | null;
}

export interface Sla {
  first_response_due?: string | null;
  next_response_due?: string | null;
  breached?: string[];
}

export interface Conversation {
  conversation_id: string;
  channel: string;
  account: string;
  contact: { id: string; name: string };
  head: number;
  updated_at: string | null;
  created_at?: string | null;
  status: Status;
  assignee: string | null;
  team: string | null;
  priority: Priority;
  labels: string[];
  contact_id: string | null;
  snoozed_until: string | null;
  last_message: LastMessage | null;
  unread?: number;
  sla?: Sla | null;
  /* client side: the latest triage of an inbound message said so */
  frustrated?: boolean;
  frustrated_seq?: number; /* the seq of the triage event it comes from */
}

export interface CloudEvent {
  id: string;
  type: string;
  time?: string;
  subject?: string;
  seq?: number;
  epoch?: string;
  source?: string;
  data?: Record<string, any>;
}

export type DeliveryState = "sent" | "delivered" | "read" | "failed";

/* a reply typed while offline or not yet acknowledged */
export interface Pending {
  conversation: string;
  client_msg_id: string;
  text: string;
  internal: boolean;
  /* the suggested reply it was made from (counted by the knowledge base) */
  suggestion?: { id: string; source: string };
  error?: string;
}

export const PRIORITIES: Priority[] = ["urgent", "high", "normal", "low"];
export const STATUSES: Status[] = ["open", "pending", "snoozed", "resolved", "bot"];
