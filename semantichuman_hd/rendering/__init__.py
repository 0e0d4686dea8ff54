"""Volume rendering: cameras and rays, ray samplers, the K-part compositor."""
