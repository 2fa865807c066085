"""The web console: operators, departments and supervisors, served by the platform itself."""
