// The scenarios on the single-server deployment: SQLite, default bucket in the local store.
import { describeRun } from "../lib/run.mjs";

describeRun({ label: "medport on SQLite (temporary data directory)", postgres: false });
