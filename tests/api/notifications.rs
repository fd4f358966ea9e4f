//! Notifications through HTTP and real servers: e-mail to the SMTP test server
//! (`scripts/test-services.sh smtp`, aiosmtpd), parsed as a mail client would; webhooks to a
//! receiver run by the test that checks each signature; the address rules for webhook
//! targets; outages, restarts and two instances on one database.

mod email;
mod webhooks;

use diesel::prelude::*;
use medport::app::notifications::email::{self as outbox, Link, Notice, OutgoingEmail};
use medport::infra::db::write_tx;

use crate::helpers::TestApp;

/// Queues `msg` as the code that records an event does: inside a write transaction.
pub fn queue_email(app: &TestApp, msg: &OutgoingEmail) {
    let mut conn = app.db.conn().unwrap();
    write_tx(&mut conn, |conn| outbox::queue(conn, msg)).unwrap();
}

/// A receipt-like message whose sender name and note carry markup.
pub fn receipt(to: medport::domain::email::Email) -> OutgoingEmail {
    let notice = Notice {
        heading: "Files received from <b>Dr. O'Neil</b>",
        lines: vec!["3 files & a note arrived through your upload request.".into()],
        quote: Some("<script>alert('x')</script>\nPlease see series 2."),
        link: Some(Link {
            label: "Open the request",
            url: "https://medport.example.org/requests/1?a=1&b=2",
        }),
    };
    OutgoingEmail::from_notice(to, "request.receipt", "Files received <3", &notice).unwrap()
}

/// (state, attempts, last_error) of the outbox row for `recipient`.
pub fn outbox_row(app: &TestApp, recipient: &str) -> Option<(String, i32, Option<String>)> {
    use medport::infra::db::schema::email_outbox as t;
    let mut conn = app.db.conn().unwrap();
    t::table
        .filter(t::recipient.eq(recipient))
        .select((t::state, t::attempts, t::last_error))
        .first(&mut *conn)
        .optional()
        .unwrap()
}
