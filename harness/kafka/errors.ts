import { LocalServerError } from '../dynamoLocal.ts';

/** The local Kafka mock cluster could not be built or started. */
export class KafkaMockError extends LocalServerError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KafkaMockError';
  }
}

/** Building the mock cluster needs tools this machine lacks (a C compiler, make, patch…). */
export class KafkaMockToolchainError extends KafkaMockError {
  /** The commands that were not found on PATH. */
  readonly missing: readonly string[];
  constructor(missing: readonly string[]) {
    super(
      `cannot build the local Kafka mock cluster: ${missing.join(', ')} not found on PATH. ` +
        'On Debian/Ubuntu: apt-get install -y gcc make patch (or point KAFKA_MOCK_BIN at a built kafka-mock, ' +
        'or use an existing Kafka cluster with --brokers)',
    );
    this.name = 'KafkaMockToolchainError';
    this.missing = missing;
  }
}

/** The build script ran and failed (download, integrity check, patch, compile or link). */
export class KafkaMockBuildError extends KafkaMockError {
  /** The build log, when the script got far enough to write one. */
  readonly logPath: string | undefined;
  constructor(message: string, logPath: string | undefined) {
    super(message);
    this.name = 'KafkaMockBuildError';
    this.logPath = logPath;
  }
}

/** Reading a topic with kcat failed (see `kcat.ts`). */
export class KcatError extends LocalServerError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KcatError';
  }
}

/** `kcat` is not installed (or not on PATH). */
export class KcatNotFoundError extends KcatError {
  /** The Debian package that provides it. */
  readonly debianPackage = 'kcat';
  constructor(bin: string, options?: ErrorOptions) {
    super(
      `${bin} not found: reading Kafka independently of kafkajs needs kcat. ` +
        'On Debian/Ubuntu: apt-get install -y kcat (or point KCAT_BIN at a kcat binary)',
      options,
    );
    this.name = 'KcatNotFoundError';
  }
}
