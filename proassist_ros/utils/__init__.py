"""Small ROS-free helpers shared by the CLI, the tests and the nodes."""
