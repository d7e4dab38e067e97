//! Embeds the notification templates (every file under
//! `templates/notifications`), so a new notification needs no code change.

fn main() {
    minijinja_embed::embed_templates!(
        "templates/notifications",
        &[".txt", ".html"][..],
        "notifications"
    );
}
