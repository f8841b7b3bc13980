# Sensor drivers. Each takes the bus it is given (machine.I2C, onewire.OneWire,
# machine.ADC or a test fake with the same methods) and never builds one.
