"""Run: one point's pipeline, the controller/worker protocol and the results of a run."""
