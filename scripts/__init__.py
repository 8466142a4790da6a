"""The `clesc` command: local Label Studio, project setup, demo, and (later) sync, reports, export."""
