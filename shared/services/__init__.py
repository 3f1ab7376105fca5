"""The services: settings, database, servers, pytest runs and their results, grading, the site."""
