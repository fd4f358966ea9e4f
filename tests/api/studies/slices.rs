//! The per-study summary rows the pages read (`study_slices`) always equal the instances
//! grouped afresh, whatever changes what counts and in whatever order: instances indexed
//! before or after their upload completes, missing series and modalities, two uploaders,
//! a state that changes and changes back, an upload that leaves `completed`, a row that
//! goes. The database keeps them, so each change is made here as any code path could.

use chrono::Duration;
use diesel::prelude::*;
use medport::infra::db::DbConnection;
use medport::infra::db::schema::{dicom_instances, study_slices, uploads};

use super::support::{STUDY, write_batch, write_instance};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

/// Rows in one of the two and not the other: the summary against the instances grouped.
fn differences(conn: &mut DbConnection) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    const GROUPED: &str = "SELECT d.study_uid, COALESCE(d.series_uid, ''), d.user_id, \
        COALESCE(d.modality, ''), COALESCE(u.batch_id, ''), COUNT(*), SUM(u.declared_size), \
        MIN(d.series_number), MAX(d.series_description), MIN(d.study_date), \
        MAX(d.study_description), MIN(u.created_at), MAX(u.completed_at) \
        FROM dicom_instances d JOIN uploads u ON u.id = d.upload_id \
        WHERE d.state = 'indexed' AND u.status = 'completed' AND d.study_uid IS NOT NULL \
        GROUP BY 1, 2, 3, 4, 5";
    let summary = "SELECT study_uid, series_uid, user_id, modality, batch_id, instances, \
        bytes, series_number, series_description, study_date, study_description, \
        first_upload, last_completion FROM study_slices";
    let sql = format!(
        "SELECT COUNT(*) AS n FROM (SELECT * FROM ({GROUPED} EXCEPT {summary}) a \
         UNION ALL SELECT * FROM ({summary} EXCEPT {GROUPED}) b) c"
    );
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

fn counted(conn: &mut DbConnection) -> i64 {
    study_slices::table
        .select(study_slices::instances)
        .load::<i64>(conn)
        .unwrap()
        .into_iter()
        .sum()
}

async fn the_study_summary_follows_every_change_to_what_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.create_user("first@example.org", "uploader", "a long enough password");
    let second = app.create_user("second@example.org", "uploader", "a long enough password");
    let mut pooled = app.db.conn().unwrap();
    let conn: &mut DbConnection = &mut pooled;
    let start = chrono::Utc::now().naive_utc();
    let (batch, other_batch) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    write_batch(conn, &batch, &first, 40, start).unwrap();
    write_batch(conn, &other_batch, &second, 2, start).unwrap();

    // Indexed with the upload already completed, and indexed while it is still completing.
    let mut completing = Vec::new();
    for i in 0..30 {
        let at = start + Duration::seconds(i64::try_from(i).unwrap());
        let status = if i % 2 == 0 {
            "completed"
        } else {
            "completing"
        };
        let id = write_instance(conn, &first, &batch, STUDY, i, i % 3, status, at);
        if status == "completing" {
            completing.push(id);
        }
    }
    let theirs = write_instance(
        conn,
        &second,
        &other_batch,
        STUDY,
        99,
        1,
        "completed",
        start,
    );
    assert_eq!(differences(conn), 0);
    assert_eq!(counted(conn), 16, "completing uploads do not count yet");

    let completed_at = start + Duration::minutes(5);
    for id in &completing {
        diesel::update(uploads::table.find(id))
            .set((
                uploads::status.eq("completed"),
                uploads::completed_at.eq(completed_at),
            ))
            .execute(conn)
            .unwrap();
    }
    assert_eq!(differences(conn), 0);
    assert_eq!(counted(conn), 31);

    // A copy found to be a duplicate, then the first copy again; an attribute rewritten.
    let some = &completing[3];
    for state in ["duplicate", "indexed", "conflict"] {
        diesel::update(dicom_instances::table.find(some))
            .set(dicom_instances::state.eq(state))
            .execute(conn)
            .unwrap();
        assert_eq!(differences(conn), 0, "{state}");
    }
    diesel::update(dicom_instances::table.find(&completing[4]))
        .set(dicom_instances::series_description.eq("Renamed"))
        .execute(conn)
        .unwrap();
    assert_eq!(differences(conn), 0);
    assert_eq!(counted(conn), 30);

    // A completed upload that leaves `completed`, and an index row that goes.
    diesel::update(uploads::table.find(&completing[5]))
        .set(uploads::status.eq("quarantined"))
        .execute(conn)
        .unwrap();
    diesel::delete(dicom_instances::table.find(&theirs))
        .execute(conn)
        .unwrap();
    assert_eq!(differences(conn), 0);
    assert_eq!(counted(conn), 28);

    // Key rotation rewrites the sealed patient and blind indexes of every row: the
    // summary does not move (and is not recomputed: see the migration).
    diesel::update(dicom_instances::table)
        .set(dicom_instances::blind_key_id.eq("k2"))
        .execute(conn)
        .unwrap();
    assert_eq!(differences(conn), 0);
    assert_eq!(counted(conn), 28);
}

both_backends!(the_study_summary_follows_every_change_to_what_counts);
