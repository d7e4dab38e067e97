-- The citizen's side writes on its tickets (request.message_added): every
-- message in both directions is kept in the ticket's history.
ALTER TABLE ticket_history DROP CONSTRAINT ticket_history_kind_check;
ALTER TABLE ticket_history ADD CONSTRAINT ticket_history_kind_check CHECK (kind IN
    ('opened', 'taken_in_charge', 'commented', 'reassigned', 'closed', 'citizen_message'));
