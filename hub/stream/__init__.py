"""The stream-processing runtime: Faust agents and tasks around the pure core."""
