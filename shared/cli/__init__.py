"""The command lines: learner.py for learners, maintainer.py for teachers and maintainers."""
