"""Sample data and bag I/O (ROS-free)."""
