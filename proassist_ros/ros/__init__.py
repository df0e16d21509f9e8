"""Thin rclpy adapters: nodes, message conversions, QoS and DDS setup around the ROS-free core."""
