"""`vislab submission`: a folder that runs in the course's environment."""
