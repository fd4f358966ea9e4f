// The scenarios on the scaled-out deployment: PostgreSQL, default bucket on S3.
import { describeRun } from "../lib/run.mjs";

describeRun({ label: "medport on PostgreSQL + S3", postgres: true });
